"""hygen.losses"""
