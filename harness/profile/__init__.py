"""`ckpt-harness profile`: where the save/restore time goes.

fit.py       the cost model t = fixed + per_variable x n_vars + per_byte x bytes, robust fit
sweep.py     the grid of ordinary scenarios, run through the runner's worker
syscalls.py  one save per API under `strace -f -c -w` (system call time vs the rest)
save_child.py the measured child of syscalls.py
fileformat.py profile.csv / profile-fit.csv / profile-syscalls.csv: columns, version, reader
cli.py       the command
"""
