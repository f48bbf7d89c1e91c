"""Callbacks for training frameworks: Lightning and Hugging Face ``Trainer``.

Optional extras (``pip install "deadcheck[lightning]"`` or
``"deadcheck[transformers]"``); ``import deadcheck`` never imports them.
"""
