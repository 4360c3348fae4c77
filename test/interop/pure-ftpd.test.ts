import { describe } from 'vitest';
import { defineMatrix } from './matrix.js';

describe('interop: pure-ftpd', () => defineMatrix('pure-ftpd'));
