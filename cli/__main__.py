from agentwatt.cli.main import main

main(prog_name="agentwatt")
