from tariff.app import main

main()
