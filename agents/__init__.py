"""hasf.agents"""
