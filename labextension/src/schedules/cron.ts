// A cron expression in words, for the common shapes: "every 2 seconds", "every 15 minutes",
// "every hour at :30", "at 03:00 every day", "at 09:00 on weekdays". Five fields (minute hour
// day month weekday), or six with seconds last, as the server reads them (croniter). Anything
// else is null: the raw expression says it.

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];

const NUMBER = /^\d+$/;
const STEP = /^\*\/(\d+)$/;

function every(n: number, unit: string): string {
  return n === 1 ? `every ${unit}` : `every ${n} ${unit}s`;
}

function two(value: string): string {
  return value.padStart(2, '0');
}

/** Which days, for a fixed time of day: "every day", "on Mondays", "on weekdays", "on day 1 of
 * the month"; null for other shapes. */
function days(day: string, month: string, weekday: string): string | null {
  if (month !== '*') {
    return null;
  }
  if (day === '*' && weekday === '*') {
    return 'every day';
  }
  if (day === '*' && NUMBER.test(weekday) && Number(weekday) <= 7) {
    return `on ${DAYS[Number(weekday)]}s`;
  }
  if (day === '*' && (weekday === '1-5' || weekday.toLowerCase() === 'mon-fri')) {
    return 'on weekdays';
  }
  if (weekday === '*' && NUMBER.test(day)) {
    return `on day ${Number(day)} of the month`;
  }
  return null;
}

/** The expression in words, or null when it is not one of the shapes above. */
export function cronWords(expression: string): string | null {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) {
    return null;
  }
  const [minute, hour, day, month, weekday, second = '0'] = fields;
  const daily = day === '*' && month === '*' && weekday === '*';
  if (second !== '0') {
    const step = STEP.exec(second);
    const everySecond = second === '*' ? 1 : step ? Number(step[1]) : 0;
    return everySecond && minute === '*' && hour === '*' && daily ? every(everySecond, 'second') : null;
  }
  if (hour === '*' && daily) {
    const step = STEP.exec(minute);
    if (minute === '*' || step) {
      return every(step ? Number(step[1]) : 1, 'minute');
    }
    return NUMBER.test(minute) ? `every hour at :${two(minute)}` : null;
  }
  if (!NUMBER.test(minute)) {
    return null;
  }
  const hours = STEP.exec(hour);
  if (hours && daily) {
    return `${every(Number(hours[1]), 'hour')} at :${two(minute)}`;
  }
  const when = NUMBER.test(hour) ? days(day, month, weekday) : null;
  return when ? `at ${two(hour)}:${two(minute)} ${when}` : null;
}
