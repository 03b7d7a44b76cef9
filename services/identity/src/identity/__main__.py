from identity.app import main

main()
