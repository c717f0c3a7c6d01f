"""Start the clipguide web UI: ``python app.py [--demo] [--host 0.0.0.0] [--port 7860] [--share]``."""
import sys

from clipguide.webui import main

if __name__ == "__main__":
    sys.exit(main())
