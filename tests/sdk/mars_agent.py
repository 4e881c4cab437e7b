"""Running `recoverite mars …` (the MARS agent) against the test server."""

import subprocess

from conftest import BIN


def mars(server, *args, ok=True, timeout=300):
    out = subprocess.run([str(BIN), "mars", *args, "--data-dir", str(server.data_dir)],
                         capture_output=True, text=True, timeout=timeout)
    if ok:
        assert out.returncode == 0, out.stdout + out.stderr
    return out
