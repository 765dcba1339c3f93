"""``python -m fakedriver serve ...``"""

from .cli.main import main

raise SystemExit(main())
