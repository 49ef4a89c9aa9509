pytest_plugins = ["rvnpu.labs.plugin"]
