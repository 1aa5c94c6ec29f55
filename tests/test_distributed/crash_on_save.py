"""``tools/train.py``, SIGKILLed while writing one checkpoint: a kill in the middle of saving.

Usage: ``python tests/test_distributed/crash_on_save.py NAME CONFIG [train.py args]``. The process
kills itself with SIGKILL when the checkpoint writer syncs the temporary file of checkpoint
``NAME`` (e.g. ``iter_2.pth``) to disk, i.e. after its bytes are written and before it replaces
anything. If the runner's save path does not go through the atomic backend, no such temporary
file is synced, nothing is killed and training ends normally, which the test reports.
"""

import os
import re
import runpy
import signal
import sys
from pathlib import Path

TOOLS_TRAIN = Path(__file__).resolve().parents[2] / 'tools' / 'train.py'


def main() -> None:
    name = sys.argv.pop(1)
    temporary = re.compile(rf'^\.{re.escape(name)}\.tmp-\d+$')
    fsync = os.fsync

    def fsync_or_die(fd: int) -> None:
        if temporary.match(os.path.basename(os.readlink(f'/proc/self/fd/{fd}'))):
            os.kill(os.getpid(), signal.SIGKILL)
        fsync(fd)

    os.fsync = fsync_or_die
    sys.argv[0] = str(TOOLS_TRAIN)
    runpy.run_path(str(TOOLS_TRAIN), run_name='__main__')


if __name__ == '__main__':
    main()
