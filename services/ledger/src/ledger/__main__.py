from ledger.app import main

main()
