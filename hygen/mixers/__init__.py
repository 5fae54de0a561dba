"""hygen.mixers"""
