"""Stand-in of launch.logging.get_logger: loggers below 'launch' in Python's logging tree."""
import logging


def get_logger(name=None) -> logging.Logger:
    return logging.getLogger(name or 'launch')
