from .cli import launch

launch()
