from soulctl.cli.main import main

main()
