"""Crash injection (`ckpt-harness crash`, `replay`); see docs/crash.md.

    cli          argument checks and printing
    campaign     one run: states from a mode -> checker -> crash.csv, cases
    target       what is saved: API, graph spec, which save crashes (k)
    apis         the crash targets: adapter options, where their checkpoints lie
    saver_child  the saving process: a TF-importing zygote that forks trials
    saver_control  harness side of it
    kill / mutate / diskfull   the modes that produce states directly
    strace, record, crashstates  trace mode: record a save, build crash states
    planted      consistent rewrites TF cannot detect (silent corruption)
    checker      the long-lived restoring process; classify: the outcome rules
    state        directory images, orphan bytes; content: large files as extents on disk
    cases        case folders and replay; bench: states/s for asv

The child processes and their channel are harness/child.py's, shared with `run`.
"""
