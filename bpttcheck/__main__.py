from bpttcheck.entry import main

main()
