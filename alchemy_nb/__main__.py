from alchemy_nb.cli import main

raise SystemExit(main())
