from rvnpu.cli import main

raise SystemExit(main())
