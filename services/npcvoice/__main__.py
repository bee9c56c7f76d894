from npcvoice.cli import main

raise SystemExit(main())
