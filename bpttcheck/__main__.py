from bpttcheck.cli import main

main()
