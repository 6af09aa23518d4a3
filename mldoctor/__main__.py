from mldoctor.cli import main

main()
