from aura_exporter.cli import main

raise SystemExit(main())
