from come.cli import main

raise SystemExit(main())
