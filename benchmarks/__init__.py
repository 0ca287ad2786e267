"""asv benchmarks of ckpt-harness (see docs/benchmarks.md). The classes are thin:
every measurement is made by harness.session / harness.phases / harness.overhead."""
