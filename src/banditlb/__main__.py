from banditlb.cli import main

main()
