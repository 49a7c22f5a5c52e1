from destination.cli import main

main()
