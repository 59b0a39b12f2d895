"""taskscope: async task inspection for Rust programs (tokio) in gdb.

The package is pure Python (standard library only: gdb embeds its own
interpreter) and reaches the C library through ctypes.  `binding` works with
or without gdb; `commands` needs gdb.
"""

__version__ = "0.1.0"
