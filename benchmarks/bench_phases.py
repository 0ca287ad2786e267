"""Wall time and peak memory of each save/restore phase, per API x size x variables x device.

Each timed function is only the API call. asv runs setup before and teardown
after every sample (with setup hooks it times one call per sample), so the
harness's own work goes there: setup prepares the sample (the same
ScenarioSession steps the worker uses), teardown finishes a save (manifest) or
judges a restore and raises if it was not complete.
"""

from .common import (GRID_NAMES, GRID_PARAMS, LARGE, check_restore, finish_save, require_device,
                     session, skip_gpu_without_gpu)


class _Grid:
    params = GRID_PARAMS
    param_names = GRID_NAMES
    rounds = 1                      # each round is another process that imports TensorFlow
    repeat = (3, 10, 20.0)          # min samples, max samples, seconds
    number = 1                      # one call per sample: setup prepares each call
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
        self.s.prepare_save()  # previous save removed, fresh directory, os.sync

    def teardown(self, *_):
        finish_save(self)

    @skip_gpu_without_gpu()
    def time_save(self, *_):
        """Buffered: until the API returns (async-checkpoint: until its write is done)."""
        self.s.save_call()

    @skip_gpu_without_gpu()
    def time_save_durable(self, *_):
        """The save plus fsync of its files and directories."""
        self.s.save_call()
        self.s.make_durable()

    @skip_gpu_without_gpu()
    def peakmem_save(self, *_):
        self.s.save_call()


class Restore(_Grid):
    def setup(self, api, state_size, n_vars, device):
        require_device(device)
        self.s = session(api, state_size, n_vars, device, saved=True)
        self.s.prepare_restore(cold=False)  # poison the live state, os.sync

    def teardown(self, *_):
        check_restore(self)

    @skip_gpu_without_gpu()
    def time_restore_warm(self, *_):
        """Checkpoint files in the page cache."""
        self.s.restore_call()

    @skip_gpu_without_gpu()
    def peakmem_restore(self, *_):
        self.s.restore_call()


class RestoreCold(_Grid):
    def setup(self, api, state_size, n_vars, device):
        require_device(device)
        self.s = session(api, state_size, n_vars, device, saved=True)
        self.s.prepare_restore(cold=True)  # also evicts the files before every sample

    def teardown(self, *_):
        check_restore(self)

    @skip_gpu_without_gpu()
    def time_restore_cold(self, *_):
        """Checkpoint files evicted from the page cache (posix_fadvise DONTNEED)."""
        self.s.restore_call()
