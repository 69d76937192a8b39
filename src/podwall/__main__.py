from podwall.cli import main

main()
