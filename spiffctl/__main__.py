from spiffctl.cli import main

main()
