"""hasf.stonith"""
