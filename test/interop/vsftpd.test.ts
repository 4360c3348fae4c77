import { describe } from 'vitest';
import { defineMatrix } from './matrix.js';

describe('interop: vsftpd', () => defineMatrix('vsftpd'));
