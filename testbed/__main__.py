from testbed.cli import entry

if __name__ == "__main__":  # not when a spawned child process (fpp platform --workers) imports it
    entry()
