"""After training: conversion to Hugging Face, chat, hub export."""
