from aggbatt.cli import main

raise SystemExit(main())
