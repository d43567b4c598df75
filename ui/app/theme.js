// The effective theme (`light` or `dark`), for components that draw with JavaScript.
import { createContext } from 'preact';

export const ThemeContext = createContext('light');
