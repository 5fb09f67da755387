"""`python -m demo` (`make demo`): the lead-generation scenario; see demo/scenario.py."""

import sys

from demo.scenario import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
