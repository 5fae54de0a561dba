"""hygen.learners"""
