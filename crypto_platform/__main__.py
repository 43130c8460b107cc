from crypto_platform.cli import main

main()
