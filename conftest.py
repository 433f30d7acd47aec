"""This repository's own run needs only pytester beyond the eventgate plugin (registered through
its pytest11 entry point), to test the plugin end to end."""

pytest_plugins = ["pytester"]
