from openfiles_cli import main

raise SystemExit(main())
