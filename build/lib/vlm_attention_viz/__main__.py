"""`python -m vlm_attention_viz`: the stop handlers go in before the heavy imports, so even an early Ctrl-C ends cleanly."""

import sys

from .stopping import exit_code, install_stop_handlers, stop_message

install_stop_handlers()
try:
    from .cli import main
except KeyboardInterrupt as stop:
    print(stop_message(stop), file=sys.stderr)
    sys.exit(exit_code(stop))

sys.exit(main())
