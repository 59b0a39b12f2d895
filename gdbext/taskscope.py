# Load taskscope into gdb:   (gdb) source /path/to/taskscope/gdbext/taskscope.py
#
# Works from any directory.  The C library is found in this checkout's
# build/ (run ./dev build), next to an installed copy, or at
# $TASKSCOPE_LIBRARY.  Safe to source twice.
import os
import sys

_here = os.path.dirname(os.path.abspath(__file__))
if _here not in sys.path:
    sys.path.insert(0, _here)

import taskscope.commands  # noqa: E402

taskscope.commands.register()

_printers = os.path.join(os.path.dirname(_here), "pretty-printers")
if os.path.isdir(_printers) and _printers not in sys.path:
    sys.path.insert(0, _printers)
try:
    import taskscope_printers  # noqa: E402

    taskscope_printers.register()
except ImportError:  # installed without the printers
    pass
