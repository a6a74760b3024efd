from oirl.cli import main

main()
