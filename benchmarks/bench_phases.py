"""Wall time and peak memory of each save/restore phase, per API x size x variables x device."""

from .common import (GRID_NAMES, GRID_PARAMS, LARGE, prepare_restore, require_device,
                     restore_prepared, session, skip_gpu_without_gpu)


class _Grid:
    params = GRID_PARAMS
    param_names = GRID_NAMES
    rounds = 1                      # each round is another process that imports TensorFlow
    repeat = (3, 10, 20.0)          # min samples, max samples, seconds
    warmup_time = 0.0
    timeout = 3600 if LARGE else 600


class Init(_Grid):
    def setup(self, api, state_size, n_vars, device):
        require_device(device)
        self.s = session(api, state_size, n_vars, device)

    @skip_gpu_without_gpu()
    def time_init(self, *_):
        """Assign every variable its deterministic values."""
        self.s.init()


class Save(_Grid):
    def setup(self, api, state_size, n_vars, device):
        require_device(device)
        self.s = session(api, state_size, n_vars, device)

    @skip_gpu_without_gpu()
    def time_save(self, *_):
        """Buffered: until the API returns (async-checkpoint: until its write is done)."""
        self.s.save()

    @skip_gpu_without_gpu()
    def time_save_durable(self, *_):
        """The save plus fsync of its files and directories."""
        self.s.save()
        self.s.make_durable()

    @skip_gpu_without_gpu()
    def peakmem_save(self, *_):
        self.s.save()


class Restore(_Grid):
    def setup(self, api, state_size, n_vars, device):
        require_device(device)
        self.s = session(api, state_size, n_vars, device, saved=True)
        prepare_restore(self.s, cold=False)

    @skip_gpu_without_gpu()
    def time_restore_warm(self, *_):
        """Checkpoint files in the page cache."""
        restore_prepared(self.s)

    @skip_gpu_without_gpu()
    def peakmem_restore(self, *_):
        restore_prepared(self.s)


class RestoreCold(_Grid):
    def setup(self, api, state_size, n_vars, device):
        require_device(device)
        self.s = session(api, state_size, n_vars, device, saved=True)
        prepare_restore(self.s, cold=True)  # evicts the files before every sample

    @skip_gpu_without_gpu()
    def time_restore_cold(self, *_):
        """Checkpoint files evicted from the page cache (posix_fadvise DONTNEED)."""
        restore_prepared(self.s)
