from framecolor.cli import main

main()
