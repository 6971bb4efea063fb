"""python -m jaxgan.experiments"""

from jaxgan.experiments import cli

if __name__ == "__main__":
    cli.run()
