import { describe } from 'vitest';
import { defineMatrix } from './matrix.js';

describe('interop: proftpd', () => defineMatrix('proftpd'));
