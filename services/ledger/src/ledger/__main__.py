import sys

if sys.argv[1:2] == ["ops"]:
    from ledger.ops import main as operations

    sys.exit(operations(sys.argv[2:]))

from ledger.app import main

main()
