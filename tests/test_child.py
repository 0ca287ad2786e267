"""harness/child.py with real processes and real signals: the channel, the start and its
hello, a child that dies, one that hangs (its whole process group is killed), SIGTERM as
Ctrl-C; and `run` and `crash` stopped by SIGTERM leave no process, scratch or mount behind.

The children are this very file run as a module, `python -m test_child FD BEHAVIOUR` (no
TensorFlow; see probe_main at the end), except in the last tests, which run the real commands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from harness.child import ChannelClosed, Child, ChildFailed, child_channel, exit_text, last_line, pair

TESTS = os.path.dirname(os.path.abspath(__file__))


@pytest.fixture
def probe(tmp_path, monkeypatch):
    """probe(BEHAVIOUR) -> an unstarted Child running probe_main below; all are killed at the end."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")])))
    made = []

    def make(behaviour: str) -> Child:
        child = Child("test_child", str(tmp_path / f"{behaviour}.log"), args=(behaviour,), what="probe")
        made.append(child)
        return child

    yield make
    for child in made:
        child.kill()


def _gone(procs, timeout=30.0) -> list:
    """Processes of `procs` still running (zombies count as gone) after up to `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        alive = []
        for p in procs:
            try:
                if p.status() != psutil.STATUS_ZOMBIE:
                    alive.append(p)
            except psutil.NoSuchProcess:
                pass
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.02)


def _running(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- the channel -----------------------------------------------------------------------
def test_channel_joins_split_lines_and_waits_out_a_partial_one():
    ours, theirs = pair()
    try:
        theirs.sendall(b'{"a": 1}\n{"b":')
        assert ours.recv(30) == {"a": 1}
        with pytest.raises(TimeoutError):
            ours.recv(0.05)                # half a message is not a message
        theirs.sendall(b' [2, "\xc3\xbc"]}\n')
        assert ours.recv(30) == {"b": [2, "ü"]}
        theirs.close()
        with pytest.raises(ChannelClosed):
            ours.recv(30)
        with pytest.raises(ChannelClosed):
            ours.send({"late": True})
        ours.close()                        # our own end closed (by another thread, say)
        with pytest.raises(ChannelClosed):
            ours.recv(30)
    finally:
        ours.close()
        theirs.close()


def test_last_line_is_the_last_non_blank_line(tmp_path):
    log = tmp_path / "x.log"
    assert last_line(str(log)) == ""                      # no file yet
    log.write_bytes(b"first\n" + b"x" * 20000 + b"\nTraceback ...\nValueError: bad \xff value\n\n  \n")
    assert last_line(str(log)) == "ValueError: bad \ufffd value"
    assert len(last_line(str(log), limit=5)) == 5


# -- start, talk, stop -----------------------------------------------------------------
def test_child_runs_in_its_own_session_and_leaves_when_asked(probe):
    child = probe("echo")
    hello = child.start(120)
    assert hello == {"event": "hello", "pid": child.pid}
    assert os.getsid(child.pid) == child.pid and os.getpgid(child.pid) == child.pid
    child.send({"n": 1, "text": "ü"})
    assert child.recv(60) == {"echo": {"n": 1, "text": "ü"}}
    assert child.close() == 0          # it left by itself on {"cmd": "exit"}, no kill needed


def test_what_a_child_prints_goes_to_its_log_not_into_the_channel(probe, tmp_path):
    child = probe("noisy")
    assert child.start(120)["event"] == "hello"
    child.send({"x": 1})
    assert child.recv(60) == {"echo": {"x": 1}}
    child.close()
    log = (tmp_path / "noisy.log").read_text()
    for text in ("noise on stdout before the hello", "noise on stdout after the hello", "noise on stderr"):
        assert text in log


def test_a_descriptor_travels_with_a_message(probe):
    child = probe("write-fd")
    child.start(120)
    r, w = os.pipe()
    try:
        child.ch.send_fd({"text": "through the socket"}, w)
    finally:
        os.close(w)
    assert child.recv(60) == {"written": len("through the socket")}
    with os.fdopen(r) as f:
        assert f.read() == "through the socket"   # EOF: the child closed its copy


def test_a_child_that_dies_closes_the_channel_and_leaves_its_last_line(probe):
    child = probe("die")
    child.start(120)
    child.send({"cmd": "anything"})
    with pytest.raises(ChannelClosed):
        child.recv(60)
    assert child.wait(60) == 3
    assert child.log_tail() == "probe: fatal error, dying on purpose"
    assert exit_text(child.kill()) == "exit code 3"


def test_a_hanging_child_times_out_and_its_whole_group_is_killed(probe):
    child = probe("hang")
    hello = child.start(120)
    group = [psutil.Process(child.pid), psutil.Process(hello["grandchild"])]
    assert {os.getpgid(p.pid) for p in group} == {child.pid}
    child.send({"n": 1})
    with pytest.raises(TimeoutError):
        child.recv(0.2)                       # it never answers
    code = child.close(grace=0.2)             # asked to exit, ignored that (and SIGTERM): killed
    assert code == -signal.SIGKILL and exit_text(code) == "killed by SIGKILL"
    assert not _gone(group), "a process of the child's group survived"


def test_a_child_that_never_says_hello_fails_its_start_and_is_killed(probe):
    child = probe("silent")
    with pytest.raises(ChildFailed) as e:
        child.start(0.5)
    assert e.value.timed_out and e.value.exit_code == -signal.SIGKILL
    assert "did not say hello" in str(e.value)
    assert not psutil.pid_exists(child.pid)   # killed and reaped


def test_a_child_that_ends_before_its_hello_fails_its_start_with_its_last_line(probe):
    child = probe("early")
    with pytest.raises(ChildFailed) as e:
        child.start(120)
    assert not e.value.timed_out and e.value.exit_code == 4
    assert e.value.log_tail == "probe: could not start (on purpose)"
    assert "exit code 4" in str(e.value) and e.value.log_tail in str(e.value)


def test_closing_a_child_that_is_still_starting_kills_it_without_asking(probe, tmp_path):
    # as the crash run does when stopped while its checker starts in a thread
    child = probe("listen")
    failed = []

    def start():
        try:
            child.start(10)
        except ChildFailed as e:
            failed.append(e)

    starter = threading.Thread(target=start)
    starter.start()
    deadline = time.monotonic() + 60
    while child.proc is None and time.monotonic() < deadline:
        time.sleep(0.005)
    pid = child.pid
    assert child.close() == -signal.SIGKILL
    starter.join(60)
    assert failed and not failed[0].timed_out
    assert not psutil.pid_exists(pid)
    # it never said hello, so it is not listening for an exit: nothing was sent to it
    assert "received" not in (tmp_path / "listen.log").read_text()


def test_a_kill_from_another_thread_at_any_moment_of_the_start_stops_it(probe):
    # before, during or after the Popen of the start: never a child left waiting for its hello
    for delay in (0, 0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.03):
        child = probe("listen")
        failed = []

        def start():
            try:
                child.start(20)
            except ChildFailed as e:
                failed.append(e)

        starter = threading.Thread(target=start)
        starter.start()
        time.sleep(delay)
        child.kill()
        starter.join(120)
        assert failed and not failed[0].timed_out, (delay, failed)
        assert child.pid is None or not psutil.pid_exists(child.pid)


def test_a_signal_just_as_the_child_is_created_does_not_orphan_it(tmp_path):
    # SIGTERM lands the moment Popen returns, before start() has recorded the process
    script = textwrap.dedent(f"""
        import os, signal, subprocess, sys
        from harness.child import Child, sigterm_as_interrupt

        created = []

        class SignalledPopen(subprocess.Popen):
            def __init__(self, *args, **kw):
                super().__init__(*args, **kw)
                created.append(self.pid)
                os.kill(os.getpid(), signal.SIGTERM)

        subprocess.Popen = SignalledPopen
        try:
            with sigterm_as_interrupt():
                Child("test_child", {str(tmp_path / "silent.log")!r}, args=("silent",)).start(60)
        except KeyboardInterrupt:
            print(created[0], flush=True)
        sys.stdin.readline()   # stays alive (its children unreaped) until the test has looked
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [TESTS, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = ""
    try:
        line = proc.stdout.readline()
        assert line.strip().isdigit(), proc.stderr.read()
        assert not _running(int(line)), "the child outlived the interrupted start"
    finally:
        proc.kill()
        proc.wait()
        if line.strip().isdigit() and _running(int(line)):
            os.killpg(int(line), signal.SIGKILL)   # the orphan, when the test fails


# -- SIGTERM as Ctrl-C -----------------------------------------------------------------
def _signal_handled(pid: int, timeout: float = 30.0) -> None:
    """Wait until no signal is pending for `pid`: its handler has run (or it died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/status") as f:
                pending = {k: int(v, 16) for k, v in (line.split(":\t") for line in f) if k in ("SigPnd", "ShdPnd")}
        except FileNotFoundError:
            return
        if not any(pending.values()):
            return
        time.sleep(0.005)
    raise AssertionError(f"a signal is still pending for {pid}")


def test_sigterm_raises_keyboard_interrupt_once_and_the_old_handler_comes_back():
    script = textwrap.dedent("""
        import sys, time
        from harness.child import sigterm_as_interrupt
        with sigterm_as_interrupt():
            with sigterm_as_interrupt():          # nested: the outer one stays in charge
                try:
                    print("ready", flush=True)
                    time.sleep(600)
                except KeyboardInterrupt as e:
                    print("interrupted", e, flush=True)
            sys.stdin.readline()                  # cleanup; a second SIGTERM arrives meanwhile
            print("cleaned up", flush=True)
        print("outside", flush=True)
        sys.stdin.readline()
        print("not reached", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline() == "interrupted SIGTERM\n"
        proc.send_signal(signal.SIGTERM)           # must not cut the cleanup short
        _signal_handled(proc.pid)
        proc.stdin.write("\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == "cleaned up\n", proc.stderr.read()
        assert proc.stdout.readline() == "outside\n"
        proc.send_signal(signal.SIGTERM)           # the default action is back: it ends the process
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGTERM and "not reached" not in out, err
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.tmpfs
def test_sigterm_inside_a_tmpfs_block_unmounts_it(tmp_path):
    mnt = tmp_path / "mnt"
    script = textwrap.dedent(f"""
        import time
        from harness.faults.diskfull import Tmpfs
        with Tmpfs({str(mnt)!r}, 1 << 20):
            print("mounted", flush=True)
            time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline() == "mounted\n", proc.stderr.read()
        assert os.path.ismount(mnt)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert "KeyboardInterrupt: SIGTERM" in err     # unwound, not just killed
        assert not os.path.ismount(mnt) and not mnt.exists()
    finally:
        proc.kill()
        proc.wait()
        if os.path.ismount(mnt):
            subprocess.run(["umount", "-l", str(mnt)])


def test_signals_held_in_a_block_act_when_it_ends():
    script = textwrap.dedent("""
        import os, signal
        from harness.child import signals_held, sigterm_as_interrupt
        with sigterm_as_interrupt():
            try:
                with signals_held():
                    os.kill(os.getpid(), signal.SIGTERM)
                    os.kill(os.getpid(), signal.SIGINT)
                    print("the block ran to its end", flush=True)
                print("not reached", flush=True)
            except KeyboardInterrupt as e:
                print("then interrupted by", e, flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with signals_held():
            os.kill(os.getpid(), signal.SIGINT)
        print("an ignored signal stays ignored", flush=True)
    """)
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["the block ran to its end", "then interrupted by SIGTERM",
                                     "an ignored signal stays ignored"]


# -- the commands, stopped by SIGTERM --------------------------------------------------
def _run_dir(out) -> str:
    dirs = [d for d in os.listdir(out) if not d.startswith(".")]
    assert len(dirs) == 1, dirs
    return os.path.join(out, dirs[0])


def _descendants(pid: int) -> list:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_sigterm_stops_a_run_like_ctrl_c(tmp_path):
    out = tmp_path / "runs"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "--api", "tf2-checkpoint", "--size", "4MiB",
                             "--vars", "16", "--repeat", "100", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stderr:           # the worker is measuring once its first phase is reported
        seen.append(line)
        if " build " in line:
            break
    workers = _descendants(proc.pid)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    err = "".join(seen) + err
    assert workers, err[-2000:]
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert not _gone(workers), "the worker survived"
    run_dir = _run_dir(out)
    assert os.listdir(run_dir) == ["metadata.json"]   # the scratch directory is gone
    assert json.load(open(os.path.join(run_dir, "metadata.json")))["status"] == "interrupted"


def _trial_running(pid: int) -> bool:
    """A grandchild of `pid` exists: a trial forked by the saving zygote."""
    for p in _descendants(pid):
        try:
            if p.ppid() != pid:
                return True
        except psutil.NoSuchProcess:
            pass
    return False


def _mounts_under(path) -> list[str]:
    with open("/proc/mounts") as f:
        return [line for line in f if f" {path}/" in line]


def _python_children(pid: int) -> int:
    n = 0
    for p in _direct_children(pid):
        try:
            n += p.name().startswith("python")
        except psutil.NoSuchProcess:
            pass
    return n


def _direct_children(pid: int) -> list:
    try:
        return psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []


@pytest.mark.parametrize("mode,moment", [
    ("kill", "starting"),        # the saving and checking processes are importing TensorFlow
    ("kill", "trial"),           # a trial forked by the saving zygote is running
    pytest.param("diskfull", "mounted", marks=pytest.mark.tmpfs),   # a trial's tmpfs is mounted
])
def test_sigterm_stops_a_crash_run_and_leaves_nothing_behind(tmp_path, mode, moment):
    out = tmp_path / "crash"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "crash", "--mode", mode, "--trials", "500",
                             "--size", "256KiB", "--vars", "8", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reached = {"starting": lambda: _python_children(proc.pid) >= 2,
               "trial": lambda: _trial_running(proc.pid),
               "mounted": lambda: bool(_mounts_under(out))}[moment]
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not reached():
            time.sleep(0.005)
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        children = _direct_children(proc.pid)
        everything = _descendants(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err[-2000:]
    assert "interrupted" in err and "Traceback" not in err
    assert not _gone(children, timeout=0), "a child was left running when the run exited"
    assert not _gone(everything), "processes of the crash run survived"
    assert not _mounts_under(out)
    run_dir = _run_dir(out)
    assert not [d for d in os.listdir(run_dir) if d.startswith(".work-")]
    assert json.load(open(os.path.join(run_dir, "metadata.json")))["interrupted"] is True


# -- the probe child -------------------------------------------------------------------
def probe_main(argv: list[str]) -> int:
    """The child of these tests: `python -m test_child FD BEHAVIOUR`, BEHAVIOUR one of

    echo      hello, then answer every message with {"echo": message} until {"cmd": "exit"}
    die       hello; on any message write a last line to stderr and exit with code 3
    hang      hello with the pid of a grandchild it forked (same process group); then ignore
              everything, SIGTERM included
    silent    never say hello
    listen    never say hello; write every message it receives to stderr
    early     write a line to stderr and exit with code 4 before the hello
    noisy     print to stdout and stderr around the hello
    write-fd  receive a descriptor with the next message and write the message's text to it
    """
    behaviour = argv[1]
    if behaviour == "early":
        print("probe: could not start (on purpose)", file=sys.stderr)
        return 4
    ch = child_channel(argv)
    if behaviour == "silent":
        time.sleep(600)
        return 0
    if behaviour == "listen":
        while True:
            print("received", ch.recv(), file=sys.stderr, flush=True)
    if behaviour == "noisy":
        print("noise on stdout before the hello")
    if behaviour == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        grandchild = os.fork()
        if grandchild == 0:
            ch.close()
            time.sleep(600)
            os._exit(0)
        ch.send({"event": "hello", "pid": os.getpid(), "grandchild": grandchild})
        time.sleep(600)
        return 0
    ch.send({"event": "hello", "pid": os.getpid()})
    if behaviour == "noisy":
        print("noise on stdout after the hello", flush=True)
        print("noise on stderr", file=sys.stderr, flush=True)
    while True:
        try:
            if behaviour == "write-fd":
                msg, fd = ch.recv_with_fd()
                with os.fdopen(fd, "w") as f:
                    f.write(msg["text"])
                ch.send({"written": len(msg["text"])})
                continue
            msg = ch.recv()
        except ChannelClosed:
            return 0
        if msg.get("cmd") == "exit":
            return 0
        if behaviour == "die":
            print("probe: fatal error, dying on purpose", file=sys.stderr, flush=True)
            os._exit(3)
        ch.send({"echo": msg})


if __name__ == "__main__":
    sys.exit(probe_main(sys.argv[1:]))
