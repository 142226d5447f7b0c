"""Program definitions: load, validate and locate the bundled fixtures."""

from .loader import ProgramError, Problem, load_program_file, parse_program, parse_program_text, bundled_program_path

__all__ = ["ProgramError", "Problem", "load_program_file", "parse_program", "parse_program_text", "bundled_program_path"]
