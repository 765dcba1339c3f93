"""``python -m fakedriver serve ...``"""

from ._cli import main

raise SystemExit(main())
