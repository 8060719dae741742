import sys

from midi_rwkv.cli import main

sys.exit(main())
